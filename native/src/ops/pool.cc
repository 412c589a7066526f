// Placeholder until the ops land.
