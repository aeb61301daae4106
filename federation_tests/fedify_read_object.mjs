// Reads the JSON {object, contexts} on stdin, parses `object` with Fedify's vocabulary as
// any ActivityStreams object (vocab.Object.fromJsonLd picks the class from its types;
// contexts served from `contexts` only), prints the class Fedify chose and what it reads.
// Run with cwd = fedify_peer/ so that "@fedify/vocab" resolves.
import * as vocab from "@fedify/vocab";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => { data += chunk; });
  process.stdin.on("end", () => resolve(data));
}));
const documentLoader = async (url) => {
  const document = input.contexts[url] ?? input.contexts[url.replace(/\/$/, "")];
  if (document === undefined) throw new Error(`context not bundled: ${url}`);
  return { contextUrl: null, documentUrl: url, document };
};
const options = { documentLoader, contextLoader: documentLoader };
const object = await vocab.Object.fromJsonLd(input.object, options);
const tags = [];
for await (const tag of object.getTags(options)) {
  tags.push({ type: tag.constructor.name, name: tag.name?.toString() ?? null, href: tag.href?.href ?? null });
}
const url = object.url;
process.stdout.write(JSON.stringify({
  class: object.constructor.name,
  id: object.id?.href ?? null,
  attributedTo: object.attributionId?.href ?? null,
  name: object.name?.toString() ?? null,
  summary: object.summary?.toString() ?? null,
  content: object.content?.toString() ?? null,
  url: url == null ? null : (url.href instanceof URL ? url.href.href : url.href ?? String(url)),
  tags,
}));
