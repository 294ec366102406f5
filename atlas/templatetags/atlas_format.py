"""Template filters for human-readable values (:mod:`atlas.humanize`): ``{% load atlas_format %}``."""

from django import template

from atlas import humanize

register = template.Library()

register.filter("local_time", humanize.local_time)
register.filter("number", humanize.number)
register.filter("percent", humanize.percent)
