// Text widths for laying out charts without a canvas. vega measures text with a canvas when one is
// installed and otherwise guesses 0.8 em per character, which overestimates DejaVu Sans (the font
// the PNG renderer uses) by ~30%: long axis titles then push the chart's bounds far beyond what is
// drawn and leave wide blank margins. These are DejaVu Sans's advance widths (1/1000 em) for
// printable ASCII, read from its hmtx table; browsers' Helvetica/Arial are narrower, so text laid
// out with them still fits.

// ' ' (32) .. '~' (126)
const REGULAR = [
  318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636, 636,
  636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
  603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635,
  634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
];
const BOLD = [
  348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696, 696, 696, 696, 696,
  696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850,
  733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716,
  712, 343, 343, 665, 343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
];
// the non-ASCII characters our charts write (regular, bold)
const OTHER: Record<string, [number, number]> = {
  'α': [659, 687], 'β': [638, 716], 'γ': [592, 681], '²': [401, 438], '▲': [769, 769], '–': [500, 500], '…': [1000, 1000], '·': [318, 380], '×': [838, 838],
};
/** unknown characters: about an average letter */
const FALLBACK = 620;

/** Width in pixels of `text` in DejaVu Sans at `fontSize` px. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  const table = bold ? BOLD : REGULAR;
  let w = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    w += c >= 32 && c <= 126 ? table[c - 32]! : (OTHER[ch]?.[bold ? 1 : 0] ?? FALLBACK);
  }
  return (w * fontSize) / 1000;
}
