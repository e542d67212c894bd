"""Pagination of every developer API list."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500
# Far past any real list, and far below the 64-bit integers the database slices with: an offset beyond
# 2**63 used to reach the database and fail there with a 500.
MAX_OFFSET = 10**9


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit=`` and ``?offset=`` checked like any query string: a 400 that says what to send for a value
    that is not a whole number in range (DRF's own class quietly drops those, or passes a huge one on to
    the database); a limit above ``MAX_LIMIT`` is served as ``MAX_LIMIT``, as DRF's ``max_limit`` does."""

    max_limit = MAX_LIMIT
    checked: dict = {}  # the page query of the request being paginated

    def paginate_queryset(self, queryset, request, view=None):
        page = PageQuerySerializer(
            data={
                name: request.query_params[name]
                for name in (self.limit_query_param, self.offset_query_param)
                if name in request.query_params
            }
        )
        if not page.is_valid():
            raise ValidationError(page.errors)
        self.checked = page.validated_data
        return super().paginate_queryset(queryset, request, view)

    def get_limit(self, request):
        limit = self.checked.get(self.limit_query_param)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return self.checked.get(self.offset_query_param, 0)
