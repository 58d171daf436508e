"""Parses an iCalendar file with the `icalendar` package (PyPI) and prints
what a calendar app would read from it, as JSON: the calendar's own
properties, every VEVENT, and every parse error any component collected.

Used by tests/it/calendar.rs; run as `python3 ical_events.py FILE`.
"""

import json
import sys

import icalendar


def text(component, name):
    value = component.get(name)
    return None if value is None else str(value)


def when(component, name):
    if component.get(name) is None:
        return None
    value = component.decoded(name)
    offset = value.utcoffset()
    return {
        "iso": value.isoformat(),
        "utc": offset is not None and offset.total_seconds() == 0,
    }


def main(path):
    with open(path, "rb") as f:
        cal = icalendar.Calendar.from_ical(f.read())
    errors = []
    for component in cal.walk():
        for error in getattr(component, "errors", []):
            errors.append(f"{component.name}: {error}")
    events = []
    for event in cal.walk("VEVENT"):
        sequence = event.get("SEQUENCE")
        events.append(
            {
                "uid": text(event, "UID"),
                "sequence": None if sequence is None else int(sequence),
                "status": text(event, "STATUS"),
                "summary": text(event, "SUMMARY"),
                "description": text(event, "DESCRIPTION"),
                "url": text(event, "URL"),
                "dtstamp": when(event, "DTSTAMP"),
                "dtstart": when(event, "DTSTART"),
                "dtend": when(event, "DTEND"),
            }
        )
    print(
        json.dumps(
            {
                "name": cal.name,
                "version": text(cal, "VERSION"),
                "prodid": text(cal, "PRODID"),
                "method": text(cal, "METHOD"),
                "calscale": text(cal, "CALSCALE"),
                "calname": text(cal, "X-WR-CALNAME"),
                "errors": errors,
                "events": events,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
