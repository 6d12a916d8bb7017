// longctx reports: charts of eval results (vega-lite specs -> SVG -> PNG) and the HTML page that
// compares runs side by side.
//
// Stable API:
//   charts.ts: EvalRun { name, results, dir? }, Chart { id, title, spec }, evalCharts(runs) and one
//     builder per chart (lossVsLengthChart, lossByPositionChart, copyChart, retrievalChart,
//     needleHeatmap, rulerChart, qaChart): pure functions, null when no run has the task; runColor(i);
//     figure1Series(ppl) (Figure 1's points, fit and fit status of one result)
//   render.ts: specToSvg(spec, { onWarning? }), svgToPng(svg, scale?), renderCharts(charts),
//     writeEvalCharts(dir, results, { name?, scale? }) -> DIR/charts/ID.{svg,png,vl.json}
//   runs.ts: readEvalResults(dirOrFile), validateEvalResults(json, file), loadEvalRuns(dirs, names?),
//     runNames(dirs)
//   html.ts: renderReport({ title, subtitle?, runs?, sections: [{ heading, html, id? }] }), escapeHtml,
//     section builders summaryTableSection, chartsSection (async), byLengthSection, copySection, powerLawSection,
//     runDetailsSection, standardSections (async), buildEvalReport(runs, { title? }) (async)

export * from './charts.js';
export * from './render.js';
export * from './runs.js';
export * from './html.js';
