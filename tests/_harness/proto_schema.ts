/**
 * The second protobuf encoder for the Konnectivity golden vectors, beside `protoc`:
 * `@bufbuild/protobuf`, with its schema built at runtime from
 * tests/fixtures/konnectivity.proto (a small reader for the subset that file uses:
 * proto3 enums, messages, scalar/enum/message fields and one oneof), and the golden
 * vectors' protoc text format read by its `fromText`.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createFileRegistry, type DescMessage, fromJson, toBinary } from "@bufbuild/protobuf";
import { fromText } from "@bufbuild/protobuf/txtpb";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

const SCALARS: Record<string, string> = {
  string: "TYPE_STRING",
  bytes: "TYPE_BYTES",
  int64: "TYPE_INT64",
  uint64: "TYPE_UINT64",
  int32: "TYPE_INT32",
  uint32: "TYPE_UINT32",
  bool: "TYPE_BOOL",
};

interface FieldJson {
  name: string;
  number: number;
  label: "LABEL_OPTIONAL";
  type: string;
  typeName?: string;
  jsonName: string;
  oneofIndex?: number;
}

/** Read the .proto subset into FileDescriptorProto JSON. */
function descriptorJson(source: string): Record<string, unknown> {
  const text = source.replace(/\/\/[^\n]*/g, "");
  const enums = new Set([...text.matchAll(/\benum\s+(\w+)/g)].map((m) => m[1]));
  const enumType = [...text.matchAll(/\benum\s+(\w+)\s*\{([^}]*)\}/g)].map((m) => ({
    name: m[1],
    value: [...m[2].matchAll(/(\w+)\s*=\s*(\d+)\s*;/g)].map((v) => ({
      name: v[1],
      number: Number(v[2]),
    })),
  }));
  const messageType: Record<string, unknown>[] = [];
  // A message body holds at most one level of braces (its oneof).
  for (const m of text.matchAll(/\bmessage\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}/g)) {
    const fields: FieldJson[] = [];
    const oneofDecl: { name: string }[] = [];
    const field = (type: string, name: string, num: string, oneofIndex?: number): void => {
      const scalar = SCALARS[type];
      fields.push({
        name,
        number: Number(num),
        label: "LABEL_OPTIONAL",
        type: scalar ?? (enums.has(type) ? "TYPE_ENUM" : "TYPE_MESSAGE"),
        ...(scalar ? {} : { typeName: `.${type}` }),
        jsonName: name,
        ...(oneofIndex !== undefined ? { oneofIndex } : {}),
      });
    };
    let body = m[2];
    for (const o of body.matchAll(/\boneof\s+(\w+)\s*\{([^}]*)\}/g)) {
      oneofDecl.push({ name: o[1] });
      for (const f of o[2].matchAll(/(\w+)\s+(\w+)\s*=\s*(\d+)\s*;/g)) {
        field(f[1], f[2], f[3], oneofDecl.length - 1);
      }
    }
    body = body.replace(/\boneof\s+\w+\s*\{[^}]*\}/g, "");
    for (const f of body.matchAll(/(\w+)\s+(\w+)\s*=\s*(\d+)\s*;/g)) field(f[1], f[2], f[3]);
    fields.sort((a, b) => a.number - b.number);
    messageType.push({ name: m[1], field: fields, ...(oneofDecl.length ? { oneofDecl } : {}) });
  }
  return { name: "konnectivity.proto", syntax: "proto3", enumType, messageType };
}

/** The Packet message of a .proto file, as @bufbuild/protobuf's schema. */
export function packetSchema(protoPath: string): DescMessage {
  const json = descriptorJson(readFileSync(protoPath, "utf8"));
  const fdp = fromJson(FileDescriptorProtoSchema, json as never);
  const registry = createFileRegistry(fdp, () => undefined);
  const desc = registry.getMessage("Packet");
  if (!desc) throw new Error(`no message Packet in ${protoPath}`);
  return desc;
}

/** Encode a message given in protoc's text format, as hex. */
export function bufbuildEncode(schema: DescMessage, text: string): string {
  const bytes = toBinary(schema, fromText(schema, text));
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
}
