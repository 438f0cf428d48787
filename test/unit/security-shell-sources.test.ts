// Security, static: every device (or host) shell command kml builds quotes what it interpolates.
// The TypeScript sources under host/ are parsed (TypeScript's own parser) and every argument of a
// call that ends up in a shell — adb.shell/shellOk/execOut, AgentControl.rootShellOk, asRoot,
// doctor's p.sh/p.text/p.wrap (p.readFile quotes its path), the lab's AdbLink.shell — is followed back through
// template literals, `+`, [...].join(), local consts and local command-building functions. Each
// `${…}` in such a string must be one of:
//   - a call to a quoting function (shq, shqJoin, shDisplay, the lab's shQuote) or asRoot;
//   - a constant: an ALL_CAPS name, a string/number literal, a local const initialised with one
//     of these (or with a quoted value), Math.*(…) arithmetic;
//   - a parameter that carries a whole command (cmd, command, body, script, line): the call sites
//     of that function are checked in turn.
// Anything else (a path, a serial, a name) pasted as a word is reported with file:line. A few
// reviewed exceptions are listed below with the reason they are safe.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../helpers/paths.js';

/** Calls whose arguments reach a shell. */
const SINKS = new Set(['shell', 'shellOk', 'execOut', 'rootShellOk', 'asRoot', 'wrap', 'sh', 'text']);
/** Generic names that are doctor's DeviceProbe methods only when called on `p` or `this`. */
const PROBE_SINKS = new Set(['wrap', 'sh', 'text']);
const QUOTERS = new Set(['shq', 'shqJoin', 'shDisplay', 'shQuote', 'asRoot']);
/** Parameter names that hold a complete command, checked where the function is called. */
const COMMAND_PARAMS = new Set(['cmd', 'command', 'body', 'script', 'line']);
/** Reviewed `${…}` spans (file → expression text → why it is safe). */
const REVIEWED: Record<string, Record<string, string>> = {
  'host/lab/lab.ts': {
    k: 'kml_leaky parameter names: the fixed keys rate/paths/sizes/max_kb pushed a few lines above',
  },
};

interface Finding { file: string; line: number; expr: string; context: string }

function isAllCaps(name: string): boolean {
  return /^[A-Z][A-Z0-9_]*$/.test(name);
}

/** `a || b`, `a ?? b`: either side may be the value. */
function isEither(e: ts.Node): e is ts.BinaryExpression {
  return ts.isBinaryExpression(e) && (e.operatorToken.kind === ts.SyntaxKind.BarBarToken || e.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken);
}

function calleeName(e: ts.Expression): { name?: string; receiver?: string } {
  if (ts.isIdentifier(e)) return { name: e.text };
  if (ts.isPropertyAccessExpression(e)) {
    const recv = e.expression;
    const receiver = ts.isIdentifier(recv) ? recv.text : ts.isPropertyAccessExpression(recv) ? recv.name.text : recv.kind === ts.SyntaxKind.ThisKeyword ? 'this' : undefined;
    return { name: e.name.text, receiver };
  }
  return {};
}

/** Scan one source text; returns the unquoted interpolations that reach a shell. */
export function scanSource(file: string, text: string): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const findings: Finding[] = [];
  const reviewed = REVIEWED[file] ?? {};

  // Local command-building functions, by name.
  const functions = new Map<string, ts.FunctionLikeDeclaration>();
  const collect = (n: ts.Node): void => {
    if ((ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n)) && n.name && ts.isIdentifier(n.name) && n.body) functions.set(n.name.text, n);
    ts.forEachChild(n, collect);
  };
  collect(sf);

  /**
   * What `name` may hold where `at` uses it: the initializer of the nearest enclosing `const`/`let`
   * declaration, plus every `name = …` assignment in that declaration's block (for `let`).
   */
  function valuesOf(name: string, at: ts.Node): ts.Expression[] {
    for (let scope: ts.Node | undefined = at.parent; scope; scope = scope.parent) {
      if (!ts.isBlock(scope) && !ts.isSourceFile(scope)) continue;
      for (const st of scope.statements) {
        if (!ts.isVariableStatement(st)) continue;
        for (const d of st.declarationList.declarations) {
          if (!ts.isIdentifier(d.name) || d.name.text !== name) continue;
          const out = d.initializer ? [d.initializer] : [];
          if ((st.declarationList.flags & ts.NodeFlags.Const) === 0) {
            const walk = (n: ts.Node): void => {
              if (ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.EqualsToken && ts.isIdentifier(n.left) && n.left.text === name) out.push(n.right);
              ts.forEachChild(n, walk);
            };
            walk(scope);
          }
          return out;
        }
      }
    }
    return [];
  }
  const consts = { has: (id: ts.Identifier) => valuesOf(id.text, id).length > 0, all: (id: ts.Identifier) => valuesOf(id.text, id) };

  const paramsOf = (n: ts.Node): Set<string> => {
    const out = new Set<string>();
    for (let p: ts.Node | undefined = n; p; p = p.parent) {
      if (ts.isFunctionLike(p)) for (const prm of p.parameters) if (ts.isIdentifier(prm.name)) out.add(prm.name.text);
    }
    return out;
  };

  const seen = new Set<ts.Node>();
  const line = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;

  /** Is this `${…}` expression safe to paste into a shell command? */
  function safeSpan(e: ts.Expression, depth: number): boolean {
    if (ts.isParenthesizedExpression(e)) return safeSpan(e.expression, depth);
    if (ts.isStringLiteral(e) || ts.isNumericLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return true;
    if (ts.isCallExpression(e)) {
      const { name, receiver } = calleeName(e.expression);
      if (name && QUOTERS.has(name)) return true;
      if (receiver === 'Math') return true;
      return false;
    }
    if (ts.isIdentifier(e)) {
      if (isAllCaps(e.text)) return true;
      if (reviewed[e.text]) return true;
      const inits = consts.all(e);
      if (inits.length && depth < 6 && inits.every((init) => ts.isTemplateExpression(init)
        ? init.templateSpans.every((s) => safeSpan(s.expression, depth + 1))
        : safeSpan(init, depth + 1))) return true;
      if (COMMAND_PARAMS.has(e.text) && paramsOf(e).has(e.text)) return true;
      return false;
    }
    if (ts.isPropertyAccessExpression(e)) return isAllCaps(e.name.text);
    if (ts.isConditionalExpression(e)) return safeSpan(e.whenTrue, depth) && safeSpan(e.whenFalse, depth);
    return reviewed[e.getText(sf)] !== undefined;
  }

  /** Follow a string-building expression and report its unsafe spans. */
  function check(e: ts.Expression | undefined, context: string, depth = 0): void {
    if (!e || depth > 8 || seen.has(e)) return;
    seen.add(e);
    if (ts.isParenthesizedExpression(e) || ts.isAwaitExpression(e)) return check(e.expression, context, depth);
    if (ts.isTemplateExpression(e)) {
      for (const s of e.templateSpans) part(s.expression, context, depth + 1);
      return;
    }
    if (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.PlusToken) {
      part(e.left, context, depth + 1);
      part(e.right, context, depth + 1);
      return;
    }
    if (isEither(e)) {
      check(e.left, context, depth + 1);
      check(e.right, context, depth + 1);
      return;
    }
    if (ts.isConditionalExpression(e)) {
      check(e.whenTrue, context, depth + 1);
      check(e.whenFalse, context, depth + 1);
      return;
    }
    if (ts.isArrayLiteralExpression(e)) {
      for (const el of e.elements) part(el as ts.Expression, context, depth + 1);
      return;
    }
    if (ts.isIdentifier(e)) {
      for (const init of consts.all(e)) check(init, context, depth + 1);
      return;
    }
    if (ts.isCallExpression(e)) {
      const { name, receiver } = calleeName(e.expression);
      // [..].join(sep) / [..].map(..).join(..): check the array (and the mapper's template)
      if (name === 'join' && ts.isPropertyAccessExpression(e.expression)) return check(e.expression.expression, context, depth + 1);
      if (name === 'map' && ts.isPropertyAccessExpression(e.expression)) {
        check(e.expression.expression, context, depth + 1);
        const fn = e.arguments[0];
        if (fn && (ts.isArrowFunction(fn) || ts.isFunctionExpression(fn)) && !ts.isBlock(fn.body)) check(fn.body as ts.Expression, context, depth + 1);
        return;
      }
      if (name && QUOTERS.has(name)) return; // quoted as a whole
      // a local command builder: check what it returns
      const fnDecl = name && (receiver === undefined || receiver === 'this') ? functions.get(name) : undefined;
      if (fnDecl?.body) {
        const visit = (n: ts.Node): void => {
          if (ts.isReturnStatement(n) && n.expression) check(n.expression, `${context} → ${name}()`, depth + 1);
          if (!ts.isFunctionLike(n) || n === fnDecl) ts.forEachChild(n, visit);
        };
        visit(fnDecl.body);
      }
    }
  }

  /** A piece of a command (a `+` operand, an array element): follow it, or it must be safe itself. */
  function part(e: ts.Expression, context: string, depth: number): void {
    if (ts.isParenthesizedExpression(e)) return part(e.expression, context, depth);
    if (isEither(e)) {
      part(e.left, context, depth + 1);
      part(e.right, context, depth + 1);
      return;
    }
    if (ts.isConditionalExpression(e)) {
      part(e.whenTrue, context, depth + 1);
      part(e.whenFalse, context, depth + 1);
      return;
    }
    const building = ts.isTemplateExpression(e) || ts.isArrayLiteralExpression(e)
      || (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.PlusToken)
      || (ts.isIdentifier(e) && consts.has(e) && !safeSpan(e, 0))
      || (ts.isCallExpression(e) && !safeSpan(e, 0));
    if (building) check(e, context, depth);
    else if (!safeSpan(e, 0)) findings.push({ file, line: line(e), expr: e.getText(sf), context });
  }

  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n)) {
      const { name, receiver } = calleeName(n.expression);
      if (name && SINKS.has(name) && (!PROBE_SINKS.has(name) || receiver === 'p' || receiver === 'this')) {
        for (const a of n.arguments) check(a, `${name}() at line ${line(n)}`);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return findings;
}

function sourcesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const ent of fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...sourcesUnder(rel));
    else if (ent.name.endsWith('.ts') && !ent.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

test('the scanner flags unquoted interpolation and accepts quoted or constant words', () => {
  const bad = scanSource('x.ts', [
    'async function f(adb, serial, file, dir) {',
    '  await adb.shell(serial, `cat ${file}`);',
    '  const c = `rm -rf ${dir}/x`;',
    '  await adb.shellOk(serial, c);',
    '  await adb.shell(serial, [`ls ${dir}`, "exit 0"].join("; "));',
    '  await adb.execOut(serial, "cat " + file);',
    '  await adb.shell(serial, build(dir));',
    '  await this.rootShellOk(`tail ${file}`);',
    '  let s;',
    '  if (dir) s = `ls ${shq(dir)}`; else s = `ls ${file}`;',
    '  await adb.shell(serial, s);',
    '  await adb.shell(serial, `ls ${file || "x"} ${dir ? shq(dir) : file}`, { timeoutMs: opts.t ?? 5 });',
    '}',
    'function build(d) { return `mkdir ${d}`; }',
  ].join('\n'));
  assert.deepEqual(bad.map((f) => f.expr), ['file', 'dir', 'dir', 'file', 'd', 'file', 'file', 'file', 'file']);
  const good = scanSource('y.ts', [
    'const LIMIT = 5;',
    'async function g(adb, serial, file, dir, cmd, n) {',
    '  const q = shq(file);',
    '  await adb.shell(serial, `cat ${shq(file)} ${q} ${LIMIT} ${KMEMLEAK_PATH}`);',
    '  await adb.shell(serial, asRoot(m, `rm -rf ${shqJoin([dir, file])} && tail -n ${Math.max(1, n)}`));',
    '  await adb.shell(serial, `su -c ${shq(cmd)}; ${cmd}`);',
    '  await fs.readFile(`${dir}/x`);',
    '}',
  ].join('\n'));
  assert.deepEqual(good, []);
});

test('every shell command built under host/ quotes what it interpolates', () => {
  const files = sourcesUnder('host');
  assert.ok(files.length > 50, `found ${files.length} sources`);
  const findings = files.flatMap((f) => scanSource(f, fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')));
  assert.deepEqual(findings.map((f) => `${f.file}:${f.line}: \${${f.expr}} in ${f.context}`), []);
});

test('the sinks the scanner knows are the ones host/ uses (a renamed shell call would go unchecked)', () => {
  const text = sourcesUnder('host').map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')).join('\n');
  for (const needle of ['adb.shell(', 'adb.shellOk(', 'adb.execOut(', 'this.rootShellOk(', 'p.sh(', 'p.text(', 'p.wrap(']) {
    assert.ok(text.includes(needle), `${needle} still used`);
  }
  // no other way into a shell on the host: no child_process with a shell string
  for (const f of sourcesUnder('host')) {
    const src = fs.readFileSync(path.join(REPO_ROOT, f), 'utf8');
    assert.doesNotMatch(src, /\bexecSync\s*\(|\bexec\s*\(\s*[`'"]|shell:\s*true/, `${f} runs a host shell command string`);
  }
});
