// Renderers from the analysis model (JSON is the source of truth; the others render from it).
import type { AnalyzedRun } from '../analyze/model.js';
import type { RenderOptions } from './common.js';
import { renderText } from './text.js';
import { renderJson, writeJson } from './json.js';
import { renderHtml } from './html.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';

export const REPORT_FORMATS = ['text', 'json', 'html', 'junit', 'md'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export function render(run: AnalyzedRun, format: ReportFormat, opts: RenderOptions = {}): string {
  switch (format) {
    case 'text': return renderText(run, opts);
    case 'json': return renderJson(run);
    case 'html': return renderHtml(run, opts);
    case 'junit': return renderJunit(run);
    case 'md': return renderMarkdown(run, opts);
  }
}

/** The report as pieces handed to `write` (JSON in pieces, never whole; the others whole). */
export function renderTo(run: AnalyzedRun, format: ReportFormat, opts: RenderOptions, write: (piece: string) => void): void {
  if (format === 'json') writeJson(run, write);
  else write(render(run, format, opts));
}

export { renderText, renderJson, renderHtml, renderJunit, renderMarkdown };
export type { RenderOptions };
