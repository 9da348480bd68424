using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "parent", worker = (
      modules = [(name = "parent.js", esModule = embed "parent.js")],
      compatibilityDate = "2026-04-01",
      compatibilityFlags = ["nodejs_compat", "service_binding_extra_handlers"],
      bindings = [
        (name = "LOADER", workerLoader = (id = "octo")),
        (name = "CODE", service = "codesrv"),
        (name = "STATIC", service = "static"),
        (name = "TAILSVC", service = "tailw"),
        (name = "KV", kvNamespace = "codesrv"),
        (name = "R2", r2Bucket = "codesrv"),
        (name = "DB", wrapped = (moduleName = "cloudflare-internal:d1-api",
                                innerBindings = [(name = "fetcher", service = "codesrv")])),
      ],
      globalOutbound = "codesrv",
      tails = ["tailw"],
    )),
    (name = "static", worker = (
      modules = [(name = "index.js", esModule = embed "static-child.js")],
      compatibilityDate = "2026-04-01",
      compatibilityFlags = ["nodejs_compat"],
      bindings = [(name = "VERSION", text = "static")],
    )),
    (name = "tailw", worker = (
      modules = [(name = "tail.js", esModule = embed "tail.js")],
      compatibilityDate = "2026-04-01",
    )),
    (name = "codesrv", external = (address = "127.0.0.1:19101", http = ())),
  ],
  sockets = [
    (name = "parent", address = "127.0.0.1:19110", http = (), service = "parent"),
    (name = "static", address = "127.0.0.1:19111", http = (), service = "static"),
  ],
);
