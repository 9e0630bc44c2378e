"""A stream from its source to this process's subscribers: the supervisor that runs a
source, the log (numbering, epoch, history, what a resume is owed) and the fan-out."""
