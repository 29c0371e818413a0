// The incident map: one marker per facility, coloured by how filled its requests are.
// Markers are drawn by Leaflet itself, so the map works even when no tile server is reachable.
(function () {
  "use strict";
  const box = document.getElementById("map");
  if (!box || typeof L === "undefined") return;
  const COLOURS = { full: "#1b7f3a", partial: "#b86e00", empty: "#b3261e", idle: "#6b7785" };
  const map = L.map(box, { scrollWheelZoom: false });
  if (box.dataset.tiles) {
    L.tileLayer(box.dataset.tiles, { maxZoom: 18, attribution: box.dataset.attribution }).addTo(map);
  }
  const layer = L.layerGroup().addTo(map);

  function points() {
    const data = document.getElementById("map-points");
    return data ? JSON.parse(data.textContent) : [];
  }

  function draw(fit) {
    layer.clearLayers();
    const bounds = [];
    for (const p of points()) {
      const marker = L.circleMarker([p.lat, p.lon], {
        radius: 8, weight: 2, color: "#fff", fillColor: COLOURS[p.state], fillOpacity: 0.95,
      });
      marker.bindTooltip(p.code + " " + p.name + ": " + p.filled + "/" + p.requested + " filled" + (p.pending ? ", " + p.pending + " pending" : ""));
      marker.addTo(layer);
      bounds.push([p.lat, p.lon]);
    }
    if (fit && bounds.length) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 11 });
  }

  draw(true);
  document.addEventListener("fill-updated", function () { draw(false); });
})();
