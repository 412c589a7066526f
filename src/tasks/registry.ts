/**
 * The one table of tasks: what `cloze pretrain --task` and `cloze eval`
 * choose from. Each entry names the task's recipe (the preset's values for
 * unset fields), its builder for the shared loop, the devices it trains on,
 * and, for checkpoints it wrote (by config.json's model_type), how to open
 * their encoder for scoring. Adding a task: its folder under src/tasks (task.ts,
 * config.ts with its section, data.ts, its evaluation), a row here, its name
 * among the `task` field's choices (src/train/config.ts) and its section in
 * RUN_SECTIONS (config.ts); test/structure.test.ts checks that they agree.
 */
import type { LoadedCheckpoint } from '../checkpoint/checkpoint.js';
import type { Device } from '../native/types.js';
import type { EncoderUnderTest } from '../eval/encoder-score.js';
import type { TaskEval, TrainTask } from '../train/loop.js';
import type { Progress } from '../train/progress.js';
import type { RunConfig, TaskName } from './config.js';
import { withMimRecipe } from './mim/config.js';
import { openMimEncoder } from './mim/evaluate.js';
import type { Communicator } from '../distributed/index.js';
import { buildMimTask } from './mim/task.js';
import { withMlmRecipe } from './mlm/config.js';
import { buildMlmTask } from './mlm/task.js';
import { withSparkRecipe } from './spark/config.js';
import { openSparkEncoder } from './spark/evaluate.js';
import { buildSparkTask } from './spark/task.js';

export interface TaskEntry {
  /** For --help and messages. */
  describe: string;
  /** The preset's recipe for the fields a caller left unset. */
  /** `ranks`: the data-parallel world size (a batch-scaled lr scales by the global batch). */
  recipe(input: Record<string, unknown>, ranks?: number): Record<string, unknown>;
  /** `comm`: the run's data-parallel ranks (given only to a task with dataParallel, and only with more than one). */
  build(cfg: RunConfig, outDir: string, resumeDir: string | null, progress: Progress | null, comm?: Communicator): Promise<TrainTask<TaskEval> & { totalSteps: number }>;
  /** Whether it trains data-parallel over MPI ranks (its loss, data and dropout split by rank). */
  dataParallel?: boolean;
  /** Devices it trains on. */
  devices: readonly Device[];
  /** config.json model_type of its checkpoints. */
  modelType: string;
  /** Image tasks: the encoder of a checkpoint (or an untrained one) with its scoring data. */
  openEncoder?(cfg: RunConfig, ck: LoadedCheckpoint | null): Promise<EncoderUnderTest>;
}

export const TASKS: Record<TaskName, TaskEntry> = {
  mlm: {
    describe: 'masked language modeling (BERT-style text)',
    recipe: withMlmRecipe,
    build: (cfg, outDir, resumeDir, progress, comm) => buildMlmTask(cfg, outDir, resumeDir, progress, comm),
    dataParallel: true,
    devices: ['cpu', 'cuda'],
    modelType: 'bert',
  },
  mim: {
    describe: 'masked image modeling (ViT on images: MAE, SimMIM, MTO, SBAM, HPM)',
    recipe: withMimRecipe,
    build: (cfg, outDir, resumeDir, progress, comm) => buildMimTask(cfg, outDir, resumeDir, progress, comm),
    // Every method: MAE and SimMIM, MTO, SBAM and HPM (test/distributed-mim.test.ts).
    dataParallel: true,
    // Every op it calls has a cuda kernel and each step's tensors go to the model's device; it has not run on a GPU yet.
    devices: ['cpu', 'cuda'],
    modelType: 'cloze-mim',
    openEncoder: openMimEncoder,
  },
  spark: {
    describe: 'SparK (sparse masked modeling for convnets)',
    recipe: withSparkRecipe,
    build: (cfg, outDir, resumeDir, progress, comm) => buildSparkTask(cfg, outDir, resumeDir, progress, comm),
    // BatchNorm statistics over the global batch by default (--sync-bn), so that N ranks train as one process.
    dataParallel: true,
    // As mim: the masks, sites and rulebooks are made on the images' device; not yet run on a GPU.
    devices: ['cpu', 'cuda'],
    modelType: 'cloze-spark',
    openEncoder: openSparkEncoder,
  },
};

/** The task whose checkpoints carry this config.json model_type, if any. */
export function taskOfModelType(modelType: string | null): TaskName | null {
  const hit = (Object.entries(TASKS) as Array<[TaskName, TaskEntry]>).find(([, t]) => t.modelType === modelType);
  return hit ? hit[0] : null;
}
