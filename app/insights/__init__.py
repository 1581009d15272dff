"""The course report page for administrators: what students asked, read from the question log."""
