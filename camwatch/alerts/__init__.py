"""Alerts: rules over the monitoring data (:mod:`.rules`, registered by key), their state changes and
notifications (:mod:`.state`), what notifications say (:mod:`.messages`), the receivers (:mod:`.notifiers`)
and the ``[alerts]`` settings (:mod:`.config`). Torch-free and SQL-free: the facts come from
:mod:`db.alert_facts`, the alerts are stored by :mod:`db.alerts`, the worker runs them
(:mod:`worker.service.alerting`). docs/alerts.md describes the whole.
"""
