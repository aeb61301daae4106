// Reads the JSON {object, contexts} on stdin, parses `object` with Fedify's vocabulary
// (Article.fromJsonLd, contexts served from `contexts` only), prints what Fedify reads.
// Run with cwd = fedify_peer/ so that "@fedify/vocab" resolves.
import { Article, Hashtag } from "@fedify/vocab";

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
const article = await Article.fromJsonLd(input.object, { documentLoader, contextLoader: documentLoader });
const tags = [];
for await (const tag of article.getTags({ documentLoader, contextLoader: documentLoader })) {
  tags.push({ type: tag instanceof Hashtag ? "Hashtag" : tag.constructor.name, name: tag.name?.toString() ?? null, href: tag.href?.href ?? null });
}
const url = article.url;
process.stdout.write(JSON.stringify({
  id: article.id?.href ?? null,
  name: article.name?.toString() ?? null,
  summary: article.summary?.toString() ?? null,
  content: article.content?.toString() ?? null,
  url: url == null ? null : (url.href instanceof URL ? url.href.href : url.href ?? String(url)),
  tags,
}));
