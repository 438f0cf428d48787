// Pure parsers for the memory-state samples kml stores beside each kmemleak snapshot.
export * from './lines.js';
export * from './meminfo.js';
export * from './vmstat.js';
export * from './buddyinfo.js';
export * from './zoneinfo.js';
export * from './slabinfo.js';
export * from './pagetypeinfo.js';
export * from './kmsg.js';
