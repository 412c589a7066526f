/** Modules named "0", "1", … (PyTorch's nn.ModuleList), so parameter names match. */
import { Module } from './module.js';

export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.registerModule(String(i), m));
  }
}
