import { useState } from "react";

// The app create-vite's react template scaffolds, trimmed: a counter, and
// the current path (a single-page application answers every route).
export default function App() {
  const [count, setCount] = useState(0);
  return (
    <main>
      <h1>octo react spa</h1>
      <p>route: {window.location.pathname}</p>
      <button onClick={() => setCount((c) => c + 1)}>count is {count}</button>
    </main>
  );
}
