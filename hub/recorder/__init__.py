"""The recorder: SQLite history, downsampling tiers, history queries."""
