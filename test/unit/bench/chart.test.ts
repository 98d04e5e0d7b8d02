import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module without type declarations
import { renderChart } from '../../../bench/chart.mjs';

const meta = { date: '2026-11-22T00:00:00Z', node: 'v20', cpus: 2, rounds: 3, duration: 4, connections: 50 };
const rows = [
  { name: 'bare undici proxy', rps: 24000, p99: 4, ratioToBare: 1 },
  { name: 'portcullis: public <route>', rps: 19000, p99: 5, ratioToBare: 0.79 },
];

describe('bench chart', () => {
  it('draws one labelled req/s bar and one p99 bar per target, longest bar for the fastest', () => {
    const svg: string = renderChart(rows, meta);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('bare undici proxy');
    expect(svg).toContain('portcullis: public &lt;route&gt;');
    expect(svg).toContain('24000 req/s · 1.00× bare');
    expect(svg).toContain('19000 req/s · 0.79× bare');
    expect(svg).toContain('p99 5 ms');
    const widths = [...svg.matchAll(/<rect x="330" y="\d+" width="(\d+)" height="16"/g)].map((m) => Number(m[1]));
    expect(widths).toEqual([420, 333]);
  });
});
