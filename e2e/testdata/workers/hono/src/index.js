import { Hono } from "hono";

const app = new Hono();
app.get("/", (c) => c.text("hono root"));
app.get("/hello/:name", (c) => c.json({ hello: c.req.param("name") }));
app.notFound((c) => c.text("hono 404", 404));

export default app;
