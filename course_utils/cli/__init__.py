"""The command line: ``main`` builds one parser; ``core``, ``evaluation`` and ``study`` add the commands of their layer."""
