import { ApiProperty } from '@nestjs/swagger';
import { IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';

export class CreateModelDto {
  @ApiProperty({ example: 'resnet-edge', description: 'Unique per tenant; letters, digits, . _ -' })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may contain letters, digits, ".", "_" and "-"' })
  name!: string;

  @ApiProperty({ required: false }) @IsOptional() @IsString() @MaxLength(2000) description?: string;
}

export class ModelResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() description!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: Number }) latestVersion!: number | null;
}
