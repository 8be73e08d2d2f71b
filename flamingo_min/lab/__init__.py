"""The lab: what is built on the model to measure, compare and show it. Benchmarks (bench), the paper's ablations
(ablate), reports and plots (report, plots), and the probes of what the LM has learnt (probes). Everything here imports
the core (flamingo_min/*.py); nothing in the core imports this package."""
