"""The job machinery every stage shares: a run folder per job and one queue.

`runfolder` is both sides' view of a run folder: what a worker writes (events, status, its log)
and reads (a cancel request), and how the app starts a worker process and sees it die.
`workers` is the entry point every run-folder worker shares (`worker_main`: RUN_DIR in, how the
run ended in its status). `runqueue` is the app side: it records runs, starts the oldest queued
one when a slot is free (one at a time on a CPU) and ingests what the workers wrote.
engine/scheduler.py runs it in the background of the app. `background` runs short tasks on a
thread. Entry point: `python -m engine jobs list|run|cancel`.
"""
