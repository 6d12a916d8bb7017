// longctx reports: charts of eval results (vega-lite specs -> SVG -> PNG) and the HTML page that
// compares runs side by side.
//
// Stable API:
//   charts.ts: EvalRun { name, results, dir? }, Chart { id, title, spec }, evalCharts(runs) and one
//     builder per chart (lossVsLengthChart, lossByPositionChart, retrievalChart, needleHeatmap,
//     rulerChart, qaChart): pure functions, null when no run has the task; runColor(i)
//   render.ts: specToSvg(spec, { onWarning? }), svgToPng(svg, scale?), renderCharts(charts),
//     writeEvalCharts(dir, results, { name?, scale? }) -> DIR/charts/ID.{svg,png,vl.json}
//   runs.ts: readEvalResults(dirOrFile), validateEvalResults(json, file), loadEvalRuns(dirs, names?),
//     runNames(dirs)
//   html.ts: renderReport({ title, subtitle?, runs?, sections: [{ heading, html, id? }] }), escapeHtml,
//     section builders summaryTableSection, chartsSection (async), byLengthSection, powerLawSection,
//     runDetailsSection, standardSections (async), buildEvalReport(runs, { title? }) (async)

export * from './charts.js';
export * from './render.js';
export * from './runs.js';
export * from './html.js';
