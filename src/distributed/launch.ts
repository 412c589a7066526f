/** Whether this process was started by an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx). */

/** The environment variables launchers set: Open MPI's, then PMI's (MPICH, Slurm), then PMIx's. */
const LAUNCHER_VARS = ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK'] as const;

/** True when one of the launchers' variables is set (a plain `node` start sets none). */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  return LAUNCHER_VARS.some((v) => env[v] !== undefined && env[v] !== '');
}

/** The launchers' node-local rank variables: Open MPI's, MPICH's (Hydra), Slurm's. */
const LOCAL_RANK_VARS = ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'SLURM_LOCALID'] as const;

/** This process's rank among the ranks on its node (0 when no launcher says): which GPU it takes. */
export function localRank(env: NodeJS.ProcessEnv = process.env): number {
  for (const v of LOCAL_RANK_VARS) {
    const n = Number(env[v]);
    if (env[v] !== undefined && env[v] !== '' && Number.isInteger(n) && n >= 0) return n;
  }
  return 0;
}
