/** The SparK encoder behind the interface that probes and fine-tuning take. */
import type { FeatureEncoder } from '../../eval/probe.js';
import type { Tensor } from '../../tensor.js';
import type { SparkModel } from './model.js';

export class SparkFeatures implements FeatureEncoder {
  constructor(readonly model: SparkModel) {}
  get featureDim(): number {
    return this.model.encoder.outDim;
  }
  get inputSize(): [number, number] {
    return [this.model.config.imageSize, this.model.config.imageSize];
  }
  get training(): boolean {
    return this.model.encoder.training;
  }
  features(images: Tensor): Tensor {
    return this.model.features(images);
  }
  parameters() {
    return this.model.encoder.parameters();
  }
  train(on = true): void {
    this.model.encoder.train(on);
  }
  eval(): void {
    this.model.encoder.eval();
  }
}
