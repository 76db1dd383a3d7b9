"""The one exception type of the plugin."""


class PluginError(Exception):
    """A problem with the user's input: the message says what is wrong and how to fix it.

    The runner prints it on one line and exits non-zero; it never hides a traceback from
    deep inside RecBole behind a vague message, and it is raised before anything is written.
    """


class RunInterrupted(Exception):
    """Training was interrupted (Ctrl-C): where the run's last checkpoint is, to resume from."""

    def __init__(self, last_checkpoint, epoch):
        self.last_checkpoint, self.epoch = last_checkpoint, epoch
        if last_checkpoint is None:
            message = "interrupted before the first epoch ended: there is no checkpoint to resume; start the run again"
        else:
            message = (f"interrupted: the last checkpoint (after epoch {epoch}) is {last_checkpoint}; continue with "
                       f"python run/run.py --resume={last_checkpoint}")
        super().__init__(message)
