"""One trainer for any kind of data: the phases, the one step, schedules, the range test, SWA/EMA,
mining, sampling, checkpoints; what it asks of a kind of data (inputs.py), the models and their
layer groups, and the tasks."""
