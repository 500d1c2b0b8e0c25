"""Scheduled jobs: the job file, systemd timers or cron lines, `tcmscan run JOB`, notifications."""
