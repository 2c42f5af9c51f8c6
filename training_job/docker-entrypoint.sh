#!/bin/sh
# Entrypoint of the training image: always runs the train CLI (`python -m training_job train`).
# Why a script and not ENTRYPOINT ["python", "-m", "training_job", "train"]: AWS Batch hands the job
# definition's Command to the container as CMD, and ours spells out the full CLI
# (`python -m training_job train --data ...`) so it also runs outside Docker (infra/local_cloud.py, tests).
# With a bare exec-form entrypoint that would become `... train python -m training_job train ...`.
set -e
if [ "$1" = "python" ] && [ "$2" = "-m" ] && [ "$3" = "training_job" ] && [ "$4" = "train" ]; then
  shift 4
fi
exec python -m training_job train "$@"
