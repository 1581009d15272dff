"""Administration: add and remove a course's documents over HTTP, behind the admin API key."""
