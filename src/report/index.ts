/** Reporting for the method comparison suites: curve measures, SVG charts, Markdown tables. */
export {
  rauc, epochsToReach, summarize, curveArea, checkCurve, MTO_EPOCH_SHARE_TARGET,
  type Curve, type MethodSummary, type Summary,
} from './curves.js';
export { lineChartSvg, writeSvg, niceTicks, escapeXml, type Series, type LineChartOptions } from './svg-plot.js';
export { groupedBarChartSvg, type BarGroup, type GroupedBarChartOptions } from './svg-bars.js';
export { markdownTable, summaryTable, fmtPercent, fmtRatio, fmtNumber, MISSING, type Align } from './markdown.js';
