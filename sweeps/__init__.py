"""The sweep launcher: `python -m sweeps validate|trial|run|ui`."""
