"""Customer pages behind the signed links in prompt emails.

Mail scanners and link previewers fetch every URL in an email, so a GET only ever shows a page
with a button; only the POST from that button acts. The token in the URL is the only credential
(no login, no session, hence no CSRF token: a forged POST would need the secret token itself).
"""

URL_PREFIX = "/l"
"""Where the link pages live: every path under it is a customer's page."""
