"""The one exception type of the plugin."""


class PluginError(Exception):
    """A problem with the user's input: the message says what is wrong and how to fix it.

    The runner prints it on one line and exits non-zero; it never hides a traceback from
    deep inside RecBole behind a vague message, and it is raised before anything is written.
    """
