"""Ingest: config, the MQTT and serial sources, the pipeline (decode → verify → batch → commit → ack), provisioning."""
