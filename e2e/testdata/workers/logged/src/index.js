export default {
  fetch(request) {
    const marker = new URL(request.url).searchParams.get("m") ?? "none";
    console.log("e2e-logged saw " + marker);
    if (marker.startsWith("warn-")) console.warn("careful " + marker);
    return new Response("logged " + marker);
  },
};
