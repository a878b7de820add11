// Enables the mint button when the drop opens.
const opensAt = Date.parse("2026-12-01T18:00:00Z");
const button = document.getElementById("mint");
const tick = () => { button.disabled = Date.now() < opensAt; };
tick();
setInterval(tick, 1000);
