// SPDX-License-Identifier: GPL-2.0
/*
 * kml_leaky - a deliberately leaking module for the kml lab device.
 *
 * kmemleak's own test module leaks a fixed set of objects once. kml needs leaks that *grow*, with
 * real and distinct stacks, so that a collector and a report can be tested against a kernel: this
 * module runs a kthread that drops `rate` objects per second, spread round-robin over up to three
 * call paths (each a chain of noinline functions, so kmemleak's backtraces differ per path), plus
 * a one-shot batch at load time that looks like a driver leaking during probe.
 *
 * Parameters (all writable at runtime through /sys/module/kml_leaky/parameters/ unless noted):
 *   rate      objects per second, 0 stops leaking                          (default 0)
 *   paths     bitmask of enabled paths: 1=cache_insert 2=request_alloc 4=name_dup (default 7)
 *   sizes     comma list, bytes per object for path 1,2,3                  (default 200,1500,64)
 *   max_kb    stop leaking after this many KiB in total, 0 = no limit      (default 65536)
 *   load_leak objects leaked once at load time (read-only after load)      (default 4)
 *   leaked_objects, leaked_bytes  running totals (read-only)
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/atomic.h>

#define KML_NR_PATHS 3
#define KML_MAX_SIZE (64 * 1024)
#define KML_TICK_MS 100

static unsigned int rate;
module_param(rate, uint, 0644);
MODULE_PARM_DESC(rate, "objects leaked per second (0 = stopped)");

static unsigned int paths = 7;
module_param(paths, uint, 0644);
MODULE_PARM_DESC(paths, "bitmask of leaking call paths: 1=cache_insert 2=request_alloc 4=name_dup");

static unsigned int sizes[KML_NR_PATHS] = { 200, 1500, 64 };
module_param_array(sizes, uint, NULL, 0644);
MODULE_PARM_DESC(sizes, "object size in bytes for paths 1,2,3 (1..65536)");

static unsigned int max_kb = 65536;
module_param(max_kb, uint, 0644);
MODULE_PARM_DESC(max_kb, "stop leaking after this many KiB in total (0 = no limit)");

static unsigned int load_leak = 4;
module_param(load_leak, uint, 0444);
MODULE_PARM_DESC(load_leak, "objects leaked once at load time, like a driver probe leak");

static atomic_long_t leaked_objects_count = ATOMIC_LONG_INIT(0);
static atomic_long_t leaked_bytes_count = ATOMIC_LONG_INIT(0);

static int get_leaked_objects(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&leaked_objects_count));
}
static int get_leaked_bytes(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&leaked_bytes_count));
}
static const struct kernel_param_ops leaked_objects_ops = { .get = get_leaked_objects };
static const struct kernel_param_ops leaked_bytes_ops = { .get = get_leaked_bytes };
module_param_cb(leaked_objects, &leaked_objects_ops, NULL, 0444);
module_param_cb(leaked_bytes, &leaked_bytes_ops, NULL, 0444);

static struct task_struct *leaker;

static size_t path_size(int path)
{
	unsigned int s = READ_ONCE(sizes[path]);

	return clamp_t(unsigned int, s, 1, KML_MAX_SIZE);
}

static void account(void *obj, size_t size)
{
	if (!obj)
		return;
	atomic_long_inc(&leaked_objects_count);
	atomic_long_add(size, &leaked_bytes_count);
	/* The pointer is dropped here on purpose: nothing references the object any more. */
}

/* Path 1: a lookup cache whose entries are never freed. */
static noinline void kml_leaky_cache_fill_entry(size_t size)
{
	void *entry = kmalloc(size, GFP_KERNEL);

	if (entry)
		memset(entry, 0x4b, size);
	account(entry, size);
}

static noinline void kml_leaky_cache_insert(void)
{
	kml_leaky_cache_fill_entry(path_size(0));
}

/* Path 2: a request object allocated two calls deep and lost on an error path. */
static noinline void *kml_leaky_request_new(size_t size)
{
	return kzalloc(size, GFP_KERNEL);
}

static noinline void kml_leaky_request_submit(size_t size)
{
	void *req = kml_leaky_request_new(size);

	account(req, size);
}

static noinline void kml_leaky_request_alloc(void)
{
	kml_leaky_request_submit(path_size(1));
}

/* Path 3: a duplicated name string that the caller forgets to free. */
static noinline void kml_leaky_name_dup(void)
{
	size_t size = path_size(2);
	char *name = kmalloc(size, GFP_KERNEL);
	char *copy;

	if (!name)
		return;
	memset(name, 'n', size - 1);
	name[size - 1] = '\0';
	copy = kmemdup(name, size, GFP_KERNEL);
	kfree(name);
	account(copy, size);
}

static void leak_one(int path)
{
	switch (path) {
	case 0:
		kml_leaky_cache_insert();
		break;
	case 1:
		kml_leaky_request_alloc();
		break;
	default:
		kml_leaky_name_dup();
		break;
	}
}

static bool over_budget(void)
{
	unsigned int limit = READ_ONCE(max_kb);

	return limit && atomic_long_read(&leaked_bytes_count) >= (long)limit * 1024;
}

static int kml_leaky_thread(void *unused)
{
	unsigned long owed_milli = 0;	/* objects owed, in 1/1000 units, so low rates work */
	int next_path = 0;

	while (!kthread_should_stop()) {
		unsigned int r = READ_ONCE(rate);
		unsigned int mask = READ_ONCE(paths) & ((1u << KML_NR_PATHS) - 1);

		if (r && mask && !over_budget()) {
			owed_milli += (unsigned long)r * KML_TICK_MS;
			while (owed_milli >= 1000 && !over_budget()) {
				while (!(mask & (1u << next_path)))
					next_path = (next_path + 1) % KML_NR_PATHS;
				leak_one(next_path);
				next_path = (next_path + 1) % KML_NR_PATHS;
				owed_milli -= 1000;
			}
		} else {
			owed_milli = 0;
		}
		msleep_interruptible(KML_TICK_MS);
	}
	return 0;
}

/* The load-time leak: not __init, so its frames keep a symbol after init memory is freed. */
static noinline void kml_leaky_probe_table(unsigned int count)
{
	unsigned int i;

	for (i = 0; i < count; i++) {
		void *tbl = kmalloc(512, GFP_KERNEL);

		account(tbl, 512);
	}
}

static int __init kml_leaky_init(void)
{
	kml_leaky_probe_table(min(load_leak, 1024u));
	leaker = kthread_run(kml_leaky_thread, NULL, "kml_leaky");
	if (IS_ERR(leaker))
		return PTR_ERR(leaker);
	pr_info("kml_leaky: loaded (rate=%u paths=%u load_leak=%u)\n", rate, paths, load_leak);
	return 0;
}

static void __exit kml_leaky_exit(void)
{
	kthread_stop(leaker);
	pr_info("kml_leaky: unloaded after leaking %ld objects, %ld bytes\n",
		atomic_long_read(&leaked_objects_count), atomic_long_read(&leaked_bytes_count));
}

module_init(kml_leaky_init);
module_exit(kml_leaky_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kml lab: leaks kernel memory at a controllable rate through distinct call paths");
