// The bench chart: one row per target, a bar for req/s (labelled with the ratio to the bare
// proxy of the same run) and a thinner bar for p99 latency. Plain SVG, no dependencies.
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** rows: [{ name, rps, p99, ratioToBare }], meta: { date, node, cpus, rounds, duration, connections } */
export function renderChart(rows, meta) {
  const labelW = 330;
  const barW = 420;
  const rowH = 34;
  const top = 48;
  const width = labelW + barW + 150;
  const height = top + rows.length * rowH + 24;
  const maxRps = Math.max(1, ...rows.map((r) => r.rps));
  const maxP99 = Math.max(1, ...rows.map((r) => r.p99));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Portcullis bench: req/s (bar) and p99 ms (thin bar), median of ${esc(meta.rounds)} rounds</text>`,
    `<text x="10" y="38" fill="#555">${esc(meta.date)} · node ${esc(meta.node)} · ${esc(meta.cpus)} CPUs · ${esc(meta.connections)} connections · ${esc(meta.duration)}s per round</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, Math.round((r.rps / maxRps) * barW));
    const pw = Math.max(1, Math.round((r.p99 / maxP99) * barW));
    const fill = r.name.startsWith('portcullis') ? '#2f6fb0' : '#9aa5b1';
    out.push(
      `<text x="10" y="${y + 15}">${esc(r.name)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w}" height="16" fill="${fill}"/>`,
      `<text x="${labelW + w + 6}" y="${y + 15}">${esc(r.rps)} req/s · ${esc(r.ratioToBare.toFixed(2))}× bare</text>`,
      `<rect x="${labelW}" y="${y + 22}" width="${pw}" height="5" fill="#d98b2b"/>`,
      `<text x="${labelW + pw + 6}" y="${y + 29}" font-size="10" fill="#8a5a1c">p99 ${esc(r.p99)} ms</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
