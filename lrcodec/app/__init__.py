"""The command-line app and what it runs: batches of files (local workers, Ray), evaluation
against the classical anchors, the demo, the progress bar and the portability probe."""
