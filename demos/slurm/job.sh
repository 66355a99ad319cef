#!/usr/bin/env bash
# A Slurm batch job: the heat-inversion demo (demos/heat_inversion.py) on 2 MPI processes,
# checkpoints on node-local scratch, results in the folder the job was submitted from.
#
#   sbatch demos/slurm/job.sh [DEMO OPTIONS...]       e.g. --iterations 20 --cells 64
#
# The job runs in the environment sbatch was called from (Slurm's default, --export=ALL):
# activate fe_adjoint's virtual environment first ($(bash scripts/install --print-venv)),
# or set FE_ADJOINT_VENV to it. Checkpoints go to $SLURM_TMPDIR or $TMPDIR (node-local on
# most clusters), else to FE_ADJOINT_SCRATCH; results, the checkpointing report and the
# optimisation history to $SLURM_SUBMIT_DIR/results (--out DIR to change).
#
# At the time limit Slurm sends SIGTERM, then SIGKILL KillWait seconds later: fe_adjoint
# removes its checkpoint files, says so in the log, and the history keeps every completed
# iteration. Submit the same job again and it continues from there.
#SBATCH --job-name=fe_adjoint-heat-inversion
#SBATCH --ntasks=2
#SBATCH --time=00:30:00
#SBATCH --output=fe_adjoint-%j.log
set -euo pipefail
if [ -n "${FE_ADJOINT_VENV:-}" ]; then
    # shellcheck disable=SC1091
    source "$FE_ADJOINT_VENV/bin/activate"
fi
export OMP_NUM_THREADS=1
if [ "$(id -u)" = 0 ]; then  # Open MPI refuses root unless told
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# fe_adjoint's clean-up lines go straight to this log: mpiexec, which relays the processes'
# output, ends at the same SIGTERM.
export FE_ADJOINT_LOG=$SLURM_SUBMIT_DIR/fe_adjoint-$SLURM_JOB_ID.log
SCRATCH=${SLURM_TMPDIR:-${TMPDIR:-${FE_ADJOINT_SCRATCH:-/tmp}}}
echo "fe_adjoint job $SLURM_JOB_ID: $SLURM_NTASKS processes on $SLURM_JOB_NODELIST," \
     "checkpoints in $SCRATCH, results in $SLURM_SUBMIT_DIR/results"
mpiexec -n "$SLURM_NTASKS" fe-adjoint demo heat_inversion --disk-dir "$SCRATCH" \
    --out "$SLURM_SUBMIT_DIR/results" "$@"
