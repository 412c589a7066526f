/** `cloze predict`: the label and class probabilities of texts (arguments, or lines on stdin) under a fine-tuned checkpoint. */
import { createInterface } from 'node:readline';
import type { Argv } from 'yargs';
import { loadClassifier } from '../tasks/finetune/predict.js';

export function predictOptions(y: Argv) {
  return y
    .positional('text', { type: 'string', array: true, describe: 'Texts to classify (default: one per line on stdin); for a pair task, "text<TAB>text_pair"' })
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'A fine-tuned checkpoint directory, or a run directory (its latest checkpoint); with --mask, the base the mask is over' })
    .option('mask', { type: 'string', describe: 'A task\'s weight-mask file (cloze export --mask-only) to serve over the --checkpoint base' })
    .option('json', { type: 'boolean', default: false, describe: 'One JSON line per text: {"text", "label", "probabilities"}' })
    .option('batch-size', { type: 'number', default: 32, describe: 'Texts per forward pass' });
}

type PredictArgs = Awaited<ReturnType<typeof predictOptions>['argv']>;

async function stdinLines(): Promise<string[]> {
  const out: string[] = [];
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) if (line.length > 0) out.push(line);
  return out;
}

export async function runPredict(args: PredictArgs): Promise<void> {
  const texts = args.text && args.text.length > 0 ? args.text.map(String) : await stdinLines();
  const c = await loadClassifier(args.checkpoint, args.mask ? { mask: args.mask } : {});
  try {
    const inputs = texts.map((t) => {
      const tab = t.indexOf('\t');
      return c.record.pair && tab >= 0 ? { text: t.slice(0, tab), textPair: t.slice(tab + 1) } : t;
    });
    const preds = await c.predict(inputs, args['batch-size']);
    preds.forEach((p, i) => {
      if (args.json) console.log(JSON.stringify({ text: texts[i], label: p.label, probabilities: p.probabilities }));
      else console.log(`${p.label}\t${Object.entries(p.probabilities).map(([l, v]) => `${l} ${v.toFixed(4)}`).join('  ')}\t${texts[i]}`);
    });
  } finally {
    c.dispose();
  }
}
