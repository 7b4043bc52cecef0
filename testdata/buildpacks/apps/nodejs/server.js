// A tiny web app: answers every request with a line using its dependency.
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`hello from node, ms says ${ms(60000)}\n`);
  })
  .listen(port, "0.0.0.0");
