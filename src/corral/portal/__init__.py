"""The developer portal: a web front end over the admin API."""
