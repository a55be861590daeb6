"""Email: building the messages (``render``) and handing them to SMTP or the mailbox
(``transport``)."""
