"""The external programs the ticket store runs, one thin wrapper each (OCRmyPDF's ``_exec``)."""
