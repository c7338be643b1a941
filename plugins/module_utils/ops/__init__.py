"""The do/undo steps of modules: each step does one change on a host and undoes what it made
when a later part fails. Modules decide what to do; these files do it."""
