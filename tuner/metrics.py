"""Process-wide Prometheus metrics of the service's own work (the default registry): database
retries in every process, and the dispatcher's jobs and trial workers. The API's `/metrics`
shows them for its own processes; a dispatcher run on its own serves them with
`tuner dispatcher --metrics-port`. With `PROMETHEUS_MULTIPROC_DIR` set (`tuner api --workers
N` sets it) each process writes them to that folder and `/metrics` sums them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DB_RETRIES = Counter("tuner_db_retries", "Transient database errors retried (all units of work)")
JOBS_CLAIMED = Counter("tuner_dispatcher_jobs_claimed", "Jobs claimed by dispatchers")
WORKERS_STARTED = Counter("tuner_dispatcher_workers_started",
                          "Trial workers (Ray tasks) started by dispatchers")
TRIALS_STALLED = Counter("tuner_dispatcher_trials_stalled",
                         "Trials a dispatcher stopped as stalled (no epoch, batch or new trial "
                         "within their limit): hung loaders, collectives, locks")
WORKERS_RUNNING = Gauge("tuner_dispatcher_workers_running",
                        "Trial workers (Ray tasks) a dispatcher is running now",
                        multiprocess_mode="livesum")
