// PEER of the benchmark: PostGraphile 5 (Amber preset, Grafast) over taskchat's tables,
// one Node process. Not part of the product.
//   PEER_DSN=postgres://… node server.mjs PORT
// User scoping: PostGraphile gets no token; each query passes the user's row id as a
// `condition` (see bench/run.py), so S1/S2 return the same rows as taskchat.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const port = Number(process.argv[2]);
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({ connectionString: process.env.PEER_DSN, schemas: ["public"] }),
  ],
  grafserv: { port, graphiql: false, watch: false },
  grafast: { explain: false },
  // every column orderable and filterable, indexed or not (as PostGraphile 4's default)
  disablePlugins: ["PgIndexBehaviorsPlugin"],
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (error) => {
  console.error(error);
  process.exit(1);
});
await serv.addTo(server);
server.listen(port, "127.0.0.1", () => console.log(`peer listening on ${port}`));
