"""A glance_store RBD driver that publishes upload progress to memcached."""
