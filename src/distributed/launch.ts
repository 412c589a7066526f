/** Whether this process was started by an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx). */

/** The environment variables launchers set: Open MPI's, then PMI's (MPICH, Slurm), then PMIx's. */
const LAUNCHER_VARS = ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK'] as const;

/** True when one of the launchers' variables is set (a plain `node` start sets none). */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  return LAUNCHER_VARS.some((v) => env[v] !== undefined && env[v] !== '');
}
