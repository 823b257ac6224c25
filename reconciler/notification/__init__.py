"""Flux's notification API for the reconciler: Provider and Alert, event routing and delivery.

`event` is the event as Flux posts it, `objects` parses Provider/Alert objects, `routing` picks
the Alerts an event matches, `providers` turns an event into one outbound request per Provider
type, and `delivery` sends them from a bounded queue so a receiver outage never blocks
reconciling. The CRDs ship in `crds/`.
"""
