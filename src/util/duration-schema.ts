import { Type } from '@sinclair/typebox';

/** A Go-style duration setting ("1s", "500ms") with its default, for detector config schemas. */
export function DurationSetting(description: string, defaultValue: string) {
  return Type.String({ pattern: '^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$', description, default: defaultValue });
}
