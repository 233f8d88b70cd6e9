"""GeoJSON grid outlines: validate them and tell whether a location pin falls inside.

A grid is a few hundred metres across, so plane geometry on longitude/latitude is exact enough and a
small ray-casting test spares a heavy dependency (shapely, GEOS).
"""
from __future__ import annotations

from collections.abc import Sequence

Ring = Sequence[Sequence[float]]  # [[lon, lat], ...], GeoJSON order


def point_in_ring(lon: float, lat: float, ring: Ring) -> bool:
    """Ray casting: a horizontal ray from the point crosses the ring's edges an odd number of times."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[i - 1][0], ring[i - 1][1]
        if (y1 > lat) != (y2 > lat):  # the edge straddles the ray's latitude
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def point_in_polygon(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    """A GeoJSON Polygon: inside the outer ring and outside every hole."""
    if not rings or not point_in_ring(lon, lat, rings[0]):
        return False
    return not any(point_in_ring(lon, lat, hole) for hole in rings[1:])


def point_in_geometry(lon: float, lat: float, geometry: dict) -> bool:
    """Polygon or MultiPolygon; anything else contains no point."""
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return point_in_polygon(lon, lat, coords)
    if kind == "MultiPolygon":
        return any(point_in_polygon(lon, lat, polygon) for polygon in coords)
    return False


def geometry_errors(geometry: object) -> list[str]:
    """Why a GeoJSON geometry cannot outline a grid (empty list: it can)."""
    if not isinstance(geometry, dict):
        return ["缺少 geometry"]
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords if isinstance(coords, list) else [None]
    else:
        return [f"geometry 类型应为 Polygon 或 MultiPolygon，不是 {kind!r}"]
    errors: list[str] = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            errors.append("多边形没有坐标")
            continue
        for ring in polygon:
            errors += _ring_errors(ring)
    return errors


def _ring_errors(ring: object) -> list[str]:
    if not isinstance(ring, list) or len(ring) < 4:
        return ["每个环至少要有 4 个点（首尾相同）"]
    for point in ring:
        if not (isinstance(point, list) and len(point) >= 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point[:2])):
            return [f"坐标 {point!r} 不是 [经度, 纬度]"]
        lon, lat = point[0], point[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            return [f"坐标 {point!r} 超出范围（应为 [经度, 纬度]）"]
    if ring[0][:2] != ring[-1][:2]:
        return ["环的首尾两个点应相同（闭合）"]
    return []
